//! Targets: what a matching rule does.

use std::fmt::Write as _;
use std::sync::Arc;

use super::lex::quote;
use super::Family;

/// The answer a REJECT sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    IcmpNetUnreachable,
    IcmpHostUnreachable,
    IcmpPortUnreachable,
    IcmpProtoUnreachable,
    IcmpNetProhibited,
    IcmpHostProhibited,
    IcmpAdminProhibited,
    Icmp6NoRoute,
    Icmp6AdmProhibited,
    Icmp6AddrUnreachable,
    Icmp6PortUnreachable,
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

/// LOG target options (`--log-prefix`, `--log-level`, flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogTarget {
    pub(crate) prefix: Arc<str>,
    pub(crate) level: u8,
    /// `--log-tcp-sequence`, `--log-tcp-options`, `--log-ip-options`, `--log-uid`,
    /// `--log-macdecode`, as bits in that order: accepted for compatibility and saved back.
    pub(crate) flags: u8,
}

pub(crate) const LOG_DEFAULT_LEVEL: u8 = 4;

pub(crate) const LOG_FLAGS: [&str; 5] = [
    "--log-tcp-sequence",
    "--log-tcp-options",
    "--log-ip-options",
    "--log-uid",
    "--log-macdecode",
];

const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
];

pub(crate) fn parse_log_level(s: &str) -> Result<u8, String> {
    if let Ok(n) = super::value::parse_uint(s, 7) {
        return Ok(n as u8);
    }
    let lower = s.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "panic" => "emerg",
        "err" => "error",
        "warn" => "warning",
        other => other,
    };
    LOG_LEVELS
        .iter()
        .position(|l| *l == alias)
        .map(|p| p as u8)
        .ok_or_else(|| format!("bad log level {s} (0..7 or emerg..debug)"))
}

/// What a matching rule does. Chain targets hold the chain index in their table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No `-j`: the rule only counts; traversal continues.
    Continue,
    Accept,
    Drop,
    Return,
    Reject(RejectWith),
    /// `-j chain`: push a return frame.
    Jump(usize),
    /// `-g chain`: no return frame; the chain's end returns to the last `-j` caller.
    Goto(usize),
    /// raw table: untrack, continue. `ct` remembers the `-j CT --notrack` spelling.
    NoTrack {
        ct: bool,
    },
    /// raw table `-j CT --zone N`: the packet is tracked in conntrack zone N; continue.
    CtZone(u16),
    /// Non-terminating: report and continue.
    Log(LogTarget),
    /// `-j MARK`: `mark = (mark & !mask) ^ value` (every MARK option reduces to this
    /// `--set-xmark` form, which is also what iptables-save prints); continue.
    Mark {
        value: u32,
        mask: u32,
    },
    /// `-j CONNMARK`; continue.
    Connmark(ConnmarkOp),
    /// nat table: SNAT/DNAT/MASQUERADE/REDIRECT/NETMAP; terminal like ACCEPT,
    /// the engine binds the mapping.
    Nat(Arc<super::nat_target::NatTarget>),
    /// raw table: trace the packet through every later rule it hits, in every table and
    /// hook; continue.
    Trace,
    /// `-j TCPMSS`: lower the MSS option of TCP SYNs (the pipeline rewrites the packet);
    /// continue.
    TcpMss(TcpMss),
}

/// What `-j TCPMSS` sets the MSS option to. Either way the option is only ever lowered, as
/// the kernel does; a SYN without the option gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpMss {
    /// `--set-mss N`.
    Set(u16),
    /// `--clamp-mss-to-pmtu`: the path MTU (the smaller of the egress and ingress MTUs) less
    /// the IP and TCP headers (40 bytes for IPv4, 60 for IPv6).
    ClampToPmtu,
}

/// What CONNMARK does to the connection mark (`ctmark`) or, for restore, the packet mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnmarkOp {
    /// `ctmark = (ctmark & !mask) ^ value`.
    Set { value: u32, mask: u32 },
    /// `--save-mark`: `ctmark = (ctmark & !ctmask) ^ (mark & nfmask)`.
    Save { nfmask: u32, ctmask: u32 },
    /// `--restore-mark`: `mark = (mark & !nfmask) ^ (ctmark & ctmask)`.
    Restore { nfmask: u32, ctmask: u32 },
}

impl ConnmarkOp {
    pub(crate) fn apply(self, marks: &mut super::Marks) {
        match self {
            ConnmarkOp::Set { value, mask } => marks.ctmark = (marks.ctmark & !mask) ^ value,
            ConnmarkOp::Save { nfmask, ctmask } => {
                marks.ctmark = (marks.ctmark & !ctmask) ^ (marks.mark & nfmask);
            }
            ConnmarkOp::Restore { nfmask, ctmask } => {
                marks.mark = (marks.mark & !nfmask) ^ (marks.ctmark & ctmask);
            }
        }
    }
}

/// The `--set-xmark` (value, mask) pair of a MARK / CONNMARK option: `--set-xmark v/m`,
/// `--set-mark v/m` (bits of `m` cleared, `v` ORed), `--and-mark b`, `--or-mark b`,
/// `--xor-mark b`. `None` for other option names.
pub(crate) fn xmark_of(opt: &str, value: u32, mask: u32) -> Option<(u32, u32)> {
    Some(match opt {
        "--set-xmark" => (value, mask),
        "--set-mark" => (value, mask | value),
        "--and-mark" => (0, !value),
        "--or-mark" => (value, value),
        "--xor-mark" => (value, 0),
        _ => return None,
    })
}

impl Target {
    /// How a trace names what this target did (xtables-monitor's verdict column).
    pub(crate) fn trace_verdict(&self, chain_name: &dyn Fn(usize) -> String) -> String {
        match self {
            Target::Accept => "ACCEPT".into(),
            Target::Drop => "DROP".into(),
            Target::Reject(_) => "REJECT".into(),
            Target::Return => "RETURN".into(),
            Target::Jump(c) => format!("JUMP {}", chain_name(*c)),
            Target::Goto(c) => format!("GOTO {}", chain_name(*c)),
            Target::Nat(t) => super::nat_target::kind(t).to_string(),
            Target::Continue
            | Target::NoTrack { .. }
            | Target::CtZone(_)
            | Target::Log(_)
            | Target::Mark { .. }
            | Target::Connmark(_)
            | Target::Trace
            | Target::TcpMss(_) => "CONTINUE".into(),
        }
    }

    /// Appends the iptables-save form (with a leading space); `chain_name` resolves jumps.
    pub(crate) fn write(&self, out: &mut String, chain_name: &dyn Fn(usize) -> String) {
        match self {
            Target::Continue => {}
            Target::Accept => out.push_str(" -j ACCEPT"),
            Target::Drop => out.push_str(" -j DROP"),
            Target::Return => out.push_str(" -j RETURN"),
            Target::Reject(r) => {
                let _ = write!(out, " -j REJECT --reject-with {}", r.name());
            }
            Target::Jump(c) => {
                let _ = write!(out, " -j {}", chain_name(*c));
            }
            Target::Goto(c) => {
                let _ = write!(out, " -g {}", chain_name(*c));
            }
            Target::NoTrack { ct: true } => out.push_str(" -j CT --notrack"),
            Target::NoTrack { ct: false } => out.push_str(" -j NOTRACK"),
            Target::CtZone(z) => {
                let _ = write!(out, " -j CT --zone {z}");
            }
            Target::Log(log) => {
                out.push_str(" -j LOG");
                if !log.prefix.is_empty() {
                    let _ = write!(out, " --log-prefix {}", quote(&log.prefix));
                }
                if log.level != LOG_DEFAULT_LEVEL {
                    let _ = write!(out, " --log-level {}", log.level);
                }
                for (i, flag) in LOG_FLAGS.iter().enumerate() {
                    if log.flags & (1 << i) != 0 {
                        let _ = write!(out, " {flag}");
                    }
                }
            }
            Target::Nat(t) => super::nat_target::write(t, out),
            Target::Trace => out.push_str(" -j TRACE"),
            Target::TcpMss(TcpMss::Set(mss)) => {
                let _ = write!(out, " -j TCPMSS --set-mss {mss}");
            }
            Target::TcpMss(TcpMss::ClampToPmtu) => out.push_str(" -j TCPMSS --clamp-mss-to-pmtu"),
            Target::Mark { value, mask } => {
                let _ = write!(out, " -j MARK --set-xmark {value:#x}/{mask:#x}");
            }
            Target::Connmark(op) => match op {
                ConnmarkOp::Set { value, mask } => {
                    let _ = write!(out, " -j CONNMARK --set-xmark {value:#x}/{mask:#x}");
                }
                ConnmarkOp::Save { nfmask, ctmask } => {
                    let _ = write!(
                        out,
                        " -j CONNMARK --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                    );
                }
                ConnmarkOp::Restore { nfmask, ctmask } => {
                    let _ = write!(
                        out,
                        " -j CONNMARK --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                    );
                }
            },
        }
    }
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

    #[test]
    fn mark_option_forms() {
        let apply = |opt: &str, v: u32, m: u32, mark: u32| {
            let (value, mask) = xmark_of(opt, v, m).unwrap();
            (mark & !mask) ^ value
        };
        assert_eq!(apply("--set-mark", 0x5, u32::MAX, 0xff00), 0x5);
        assert_eq!(apply("--set-mark", 0x5, 0xf, 0xff0a), 0xff05);
        assert_eq!(apply("--set-xmark", 0x5, 0xf, 0xff0f), 0xff05);
        assert_eq!(apply("--set-xmark", 0x1, 0x0, 0x3), 0x2);
        assert_eq!(apply("--and-mark", 0x0f, 0, 0xff), 0x0f);
        assert_eq!(apply("--or-mark", 0x100, 0, 0xff), 0x1ff);
        assert_eq!(apply("--xor-mark", 0x3, 0, 0x5), 0x6);
        assert_eq!(xmark_of("--mark", 1, 1), None);

        let mut m = super::super::Marks {
            mark: 0xab,
            ctmark: 0x1200,
        };
        ConnmarkOp::Save {
            nfmask: 0xff,
            ctmask: 0xff,
        }
        .apply(&mut m);
        assert_eq!(m.ctmark, 0x12ab);
        m.mark = 0;
        ConnmarkOp::Restore {
            nfmask: 0xffff_ffff,
            ctmask: 0xff00,
        }
        .apply(&mut m);
        assert_eq!(m.mark, 0x1200);
        ConnmarkOp::Set {
            value: 1,
            mask: 0xffff_ffff,
        }
        .apply(&mut m);
        assert_eq!(m.ctmark, 1);
    }

    #[test]
    fn log_levels() {
        assert_eq!(parse_log_level("7").unwrap(), 7);
        assert_eq!(parse_log_level("warn").unwrap(), 4);
        assert_eq!(parse_log_level("DEBUG").unwrap(), 7);
        assert!(parse_log_level("8").is_err());
    }
}
