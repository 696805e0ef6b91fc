//! `-j SNAT`, `-j DNAT`, `-j MASQUERADE`, `-j REDIRECT`, `-j NETMAP`: the nat-table targets as
//! iptables-extensions(8) describes them. This module reads their options and prints them back
//! the way iptables-save / ip6tables-save do; the mapping itself (choosing a unique reply tuple, rewriting packets) is
//! the engine's, in the `nat` crate, which owns the types re-exported here.
//!
//! Accepted forms (ADDR is of the ruleset's family; ports need `-p tcp|udp|udplite|sctp|dccp`):
//!
//! | target     | options                                                            | built-in chains        |
//! |------------|--------------------------------------------------------------------|------------------------|
//! | SNAT       | `--to-source [ADDR[-ADDR]][:PORT[-PORT]]` `--random` `--random-fully` `--persistent` | POSTROUTING, INPUT |
//! | DNAT       | `--to-destination [ADDR[-ADDR]][:PORT[-PORT]]` `--random` `--persistent` | PREROUTING, OUTPUT |
//! | MASQUERADE | `--to-ports PORT[-PORT]` `--random` `--random-fully`               | POSTROUTING            |
//! | REDIRECT   | `--to-ports PORT[-PORT]` `--random`                                | PREROUTING, OUTPUT     |
//! | NETMAP     | `--to ADDR[/PREFIX]`                                               | all four nat chains    |
//!
//! IPv6 addresses take brackets when a port follows: `[2001:db8::1]:80`, and a range either as
//! ip6tables-save prints it, `[2001:db8::1-2001:db8::9]:80`, or as `[2001:db8::1]-[2001:db8::9]:80`.
//! `--to` is accepted for `--to-source` / `--to-destination` (it is the unique abbreviation
//! getopt lets iptables take). `--random-fully` is its own flag (see [`NatRange`] for how it differs). One range per rule: several `--to-source` were only ever honoured by kernels
//! before 2.6.11 and are rejected.
//!
//! A rule in a user chain is checked when the table is committed, against every built-in chain
//! that reaches it through `-j` / `-g` (the kernel checks the hooks a target is reachable from
//! when the table is loaded); a user chain nothing jumps to is not checked.

use std::fmt::Write as _;
use std::net::IpAddr;

pub use nat::{NatRange, NatTarget};

use crate::extension::{hook_list, Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::{Family, Hook, RuleError};

/// The hooks (built-in nat chains) a target works in, by target name.
pub(crate) fn valid_hooks(kind: &str) -> &'static [Hook] {
    match kind {
        "SNAT" => &[Hook::Input, Hook::Postrouting],
        "MASQUERADE" => &[Hook::Postrouting],
        "DNAT" | "REDIRECT" => &[Hook::Prerouting, Hook::Output],
        _ => &[
            Hook::Prerouting,
            Hook::Input,
            Hook::Output,
            Hook::Postrouting,
        ],
    }
}

/// The iptables name of a target.
pub(crate) fn kind(t: &NatTarget) -> &'static str {
    match t {
        NatTarget::Snat(_) => "SNAT",
        NatTarget::Dnat(_) => "DNAT",
        NatTarget::Masquerade(_) => "MASQUERADE",
        NatTarget::Redirect(_) => "REDIRECT",
        NatTarget::Netmap { .. } => "NETMAP",
    }
}

/// The options a target takes (`--to` is the abbreviation of SNAT's and DNAT's long option).
pub(crate) fn takes_option(kind: &str, opt: &str) -> bool {
    match kind {
        "SNAT" => matches!(
            opt,
            "--to-source" | "--to" | "--random" | "--random-fully" | "--persistent"
        ),
        "DNAT" => matches!(
            opt,
            "--to-destination" | "--to" | "--random" | "--persistent"
        ),
        "MASQUERADE" => matches!(opt, "--to-ports" | "--random" | "--random-fully"),
        "REDIRECT" => matches!(opt, "--to-ports" | "--random"),
        _ => opt == "--to",
    }
}

/// The canonical name of the option holding a target's range.
pub(crate) fn range_option(kind: &str) -> &'static str {
    match kind {
        "SNAT" => "--to-source",
        "DNAT" => "--to-destination",
        "MASQUERADE" | "REDIRECT" => "--to-ports",
        _ => "--to",
    }
}

/// The message for a second range option.
pub(crate) fn given_twice(kind: &str) -> String {
    let opt = range_option(kind);
    if matches!(kind, "SNAT" | "DNAT") {
        format!(
            "{opt} given twice: one range per rule (several ranges were only supported by \
             kernels before 2.6.11); use ADDR-ADDR:PORT-PORT"
        )
    } else {
        format!("{opt} given twice")
    }
}

/// The hooks a target is limited to, with its name for errors (every NAT target has some).
pub(crate) fn hook_limits(t: &NatTarget) -> (&'static str, &'static [Hook]) {
    let kind = kind(t);
    (kind, valid_hooks(kind))
}

/// A nat-table target being built: its name, the range option's value with its column, and
/// the flags.
#[derive(Debug)]
pub(crate) struct Builder {
    kind: &'static str,
    to: Option<(String, usize)>,
    flags: Flags,
}

impl Builder {
    /// `-j KIND` at column `col`. In a built-in chain the hook must be one the target works
    /// in; rules in user chains are checked at COMMIT against the built-in chains that reach
    /// them.
    pub(crate) fn start(kind: &'static str, cx: &Cx, col: usize) -> Result<Builder, RuleError> {
        let ok = valid_hooks(kind);
        if let Some(h) = cx.hook.filter(|h| !ok.contains(h)) {
            return Err(cx.err(
                col,
                format!(
                    "target {kind} is not valid in chain {} (only in {})",
                    h.chain_name(),
                    hook_list(ok)
                ),
            ));
        }
        Ok(Builder {
            kind,
            to: None,
            flags: Flags::default(),
        })
    }
}

impl TargetExt for Builder {
    type Output = NatTarget;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        let o = opt.text.as_str();
        if !takes_option(self.kind, o) {
            return Ok(None);
        }
        Ok(Some(match o {
            "--random" | "--random-fully" | "--persistent" => 0,
            _ => 1,
        }))
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        match arg.name {
            "--persistent" => self.flags.persistent = true,
            "--random-fully" => self.flags.random_fully = true,
            "--random" => self.flags.random = true,
            _ => {
                if self.to.is_some() {
                    return Err(arg.err_opt(given_twice(self.kind)));
                }
                self.to = Some((arg.text().to_string(), arg.tok().col));
            }
        }
        Ok(())
    }

    fn finish(
        self,
        cx: &Cx,
        col: usize,
        proto: Option<(u8, bool)>,
    ) -> Result<NatTarget, RuleError> {
        let ports_ok = matches!(proto, Some((6 | 17 | 33 | 132 | 136, false)));
        let to = self.to.as_ref().map(|(t, c)| (t.as_str(), *c));
        build(self.kind, to, self.flags, ports_ok, cx.family)
            .map_err(|(c, e)| cx.err(if c == 0 { col } else { c }, e))
    }
}

/// An error from [`build`]: the column of the offending value (0 = the target name) and text.
pub(crate) type BuildError = (usize, String);

/// The flag options of a NAT target.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub(crate) random: bool,
    pub(crate) random_fully: bool,
    pub(crate) persistent: bool,
}

/// Builds a NAT target from its options. `to` is the range option's value and column; `ports_ok`
/// says whether the rule has `-p` of a port protocol.
pub(crate) fn build(
    kind: &str,
    to: Option<(&str, usize)>,
    flags: Flags,
    ports_ok: bool,
    family: Family,
) -> Result<NatTarget, BuildError> {
    let col = to.map_or(0, |t| t.1);
    let need_ports = |r: &Option<(u16, u16)>| -> Result<(), BuildError> {
        if r.is_some() && !ports_ok {
            Err((
                col,
                "a port range needs -p tcp, udp, udplite, sctp or dccp".to_string(),
            ))
        } else {
            Ok(())
        }
    };
    let base = NatRange {
        min_addr: None,
        max_addr: None,
        ports: None,
        random: flags.random,
        random_fully: flags.random_fully,
        persistent: flags.persistent,
    };
    match kind {
        "SNAT" | "DNAT" => {
            let Some((text, _)) = to else {
                return Err((0, format!("{kind} needs {}", range_option(kind))));
            };
            let (addrs, ports) = split_range(text, family).map_err(|e| (col, e))?;
            let ports = ports.map(parse_ports).transpose().map_err(|e| (col, e))?;
            need_ports(&ports)?;
            let (min_addr, max_addr) = match addrs {
                Some((lo, hi)) => {
                    let (lo, hi) = parse_addr_range(lo, hi, family).map_err(|e| (col, e))?;
                    (Some(lo), Some(hi))
                }
                None => (None, None),
            };
            let r = NatRange {
                min_addr,
                max_addr,
                ports,
                ..base
            };
            Ok(if kind == "SNAT" {
                NatTarget::Snat(r)
            } else {
                NatTarget::Dnat(r)
            })
        }
        "MASQUERADE" | "REDIRECT" => {
            let ports = to
                .map(|(t, _)| parse_ports(t))
                .transpose()
                .map_err(|e| (col, e))?;
            need_ports(&ports)?;
            let r = NatRange { ports, ..base };
            Ok(if kind == "MASQUERADE" {
                NatTarget::Masquerade(r)
            } else {
                NatTarget::Redirect(r)
            })
        }
        _ => {
            let Some((text, _)) = to else {
                return Err((0, "NETMAP needs --to ADDRESS/PREFIX".into()));
            };
            // A bare address is a single host (/32, /128), as iptables reads it.
            let prefix: ipnet::IpNet = text
                .parse()
                .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    (
                        col,
                        format!("bad prefix {text:?} (expected ADDRESS/PREFIX)"),
                    )
                })?;
            if prefix.addr().is_ipv4() != (family == Family::V4) {
                return Err((
                    col,
                    format!("prefix {prefix} is not of this ruleset's family"),
                ));
            }
            Ok(NatTarget::Netmap {
                prefix: prefix.trunc(),
            })
        }
    }
}

/// A range option split into its address part (low and high text, equal for one address;
/// `None` when only ports are given) and its port part.
type SplitRange<'a> = (Option<(&'a str, &'a str)>, Option<&'a str>);

/// Splits `[ADDR[-ADDR]][:PORT[-PORT]]` into addresses and ports.
fn split_range(text: &str, family: Family) -> Result<SplitRange<'_>, String> {
    if text.is_empty() {
        return Err("empty range (expected ADDR[-ADDR][:PORT[-PORT]])".into());
    }
    // Port only: `:PORT[-PORT]` (an IPv6 address never starts with a single colon).
    if let Some(p) = text.strip_prefix(':') {
        if !p.starts_with(':') {
            return Ok((None, Some(p)));
        }
    }
    let (addrs, ports) = match family {
        Family::V4 => {
            if text.contains('[') || text.matches(':').count() > 1 {
                // Most likely an IPv6 address in an IPv4 ruleset: say so if it is one.
                let bare = text.trim_start_matches('[');
                let bare = bare.split(']').next().unwrap_or(bare);
                let first = bare.split('-').next().unwrap_or(bare);
                return Err(match first.parse::<IpAddr>() {
                    Ok(a) => format!("address {a} is not of this ruleset's family"),
                    Err(_) => format!("bad address {text:?}"),
                });
            }
            match text.split_once(':') {
                Some((a, p)) => (a, Some(p)),
                None => (text, None),
            }
        }
        Family::V6 => {
            if let Some(inner) = text.strip_prefix('[') {
                // `[A]`, `[A-B]`, `[A]-[B]`, each optionally followed by `:PORTS`.
                let close = inner
                    .find(']')
                    .ok_or_else(|| format!("missing ] in {text:?}"))?;
                let first = &inner[..close];
                let mut rest = &inner[close + 1..];
                let (lo, hi) = if let Some(r) = rest.strip_prefix("-[") {
                    let close = r
                        .find(']')
                        .ok_or_else(|| format!("missing ] in {text:?}"))?;
                    rest = &r[close + 1..];
                    if first.contains('-') {
                        return Err(format!("bad address range {text:?}"));
                    }
                    (first, &r[..close])
                } else {
                    first.split_once('-').unwrap_or((first, first))
                };
                let ports = if rest.is_empty() {
                    None
                } else if let Some(p) = rest.strip_prefix(':') {
                    Some(p)
                } else {
                    return Err(format!("unexpected {rest:?} after ] in {text:?}"));
                };
                return Ok((Some((lo, hi)), ports));
            }
            if text.contains(']') {
                return Err(format!("missing [ in {text:?}"));
            }
            // Without brackets there is no port: `A` or `A-B`.
            (text, None)
        }
    };
    if addrs.is_empty() {
        return Ok((None, ports));
    }
    Ok((Some(addrs.split_once('-').unwrap_or((addrs, addrs))), ports))
}

/// Parses both ends of an address range and checks family and order.
fn parse_addr_range(lo: &str, hi: &str, family: Family) -> Result<(IpAddr, IpAddr), String> {
    let one = |s: &str| -> Result<IpAddr, String> {
        let a: IpAddr = s.parse().map_err(|_| format!("bad address {s:?}"))?;
        if a.is_ipv4() != (family == Family::V4) {
            return Err(format!("address {a} is not of this ruleset's family"));
        }
        Ok(a)
    };
    let (l, h) = (one(lo)?, one(hi)?);
    if order(&l) > order(&h) {
        let text = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        return Err(format!("address range {text:?} goes from high to low"));
    }
    Ok((l, h))
}

fn order(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

/// `PORT` or `PORT-PORT`, low to high.
fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    if s.contains('/') {
        return Err(format!(
            "port shift in {s:?} (PORT-PORT/BASE) is not supported"
        ));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let num = |t: &str| -> Option<u16> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    match (num(a), num(b)) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        _ => Err(format!(
            "bad port range {s:?} (expected PORT or PORT-PORT, low to high)"
        )),
    }
}

/// Appends the iptables-save / ip6tables-save spelling of a NAT target (with a leading space).
pub(crate) fn save(t: &NatTarget, out: &mut String) {
    fn ports(p: (u16, u16), out: &mut String) {
        let _ = if p.0 == p.1 {
            write!(out, "{}", p.0)
        } else {
            write!(out, "{}-{}", p.0, p.1)
        };
    }
    fn range(r: &NatRange, out: &mut String) {
        if let Some(lo) = r.min_addr {
            // ip6tables-save brackets the whole address range when ports follow.
            let bracket = lo.is_ipv6() && r.ports.is_some();
            if bracket {
                out.push('[');
            }
            let _ = write!(out, "{lo}");
            if let Some(hi) = r.max_addr.filter(|hi| *hi != lo) {
                let _ = write!(out, "-{hi}");
            }
            if bracket {
                out.push(']');
            }
        }
        if let Some(p) = r.ports {
            out.push(':');
            ports(p, out);
        }
    }
    fn flags(r: &NatRange, out: &mut String) {
        if r.random {
            out.push_str(" --random");
        }
        if r.random_fully {
            out.push_str(" --random-fully");
        }
        if r.persistent {
            out.push_str(" --persistent");
        }
    }
    let _ = write!(out, " -j {}", kind(t));
    match t {
        NatTarget::Snat(r) | NatTarget::Dnat(r) => {
            let _ = write!(out, " {} ", range_option(kind(t)));
            range(r, out);
            flags(r, out);
        }
        NatTarget::Masquerade(r) | NatTarget::Redirect(r) => {
            if let Some(p) = r.ports {
                out.push_str(" --to-ports ");
                ports(p, out);
            }
            flags(r, out);
        }
        NatTarget::Netmap { prefix } => {
            let _ = write!(out, " --to {prefix}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: &str, max: &str, ports: Option<(u16, u16)>) -> NatRange {
        NatRange {
            min_addr: Some(min.parse().unwrap()),
            max_addr: Some(max.parse().unwrap()),
            ports,
            random: false,
            random_fully: false,
            persistent: false,
        }
    }

    fn dnat(text: &str, family: Family) -> Result<NatTarget, BuildError> {
        build("DNAT", Some((text, 7)), Flags::default(), true, family)
    }

    fn saved(t: &NatTarget) -> String {
        let mut s = String::new();
        save(t, &mut s);
        s
    }

    #[test]
    fn v4_forms() {
        assert_eq!(
            dnat("192.0.2.2:8080", Family::V4).unwrap(),
            NatTarget::Dnat(range("192.0.2.2", "192.0.2.2", Some((8080, 8080))))
        );
        assert_eq!(
            dnat("192.0.2.2-192.0.2.9", Family::V4).unwrap(),
            NatTarget::Dnat(range("192.0.2.2", "192.0.2.9", None))
        );
        let port_only = dnat(":8080-8090", Family::V4).unwrap();
        assert_eq!(
            port_only,
            NatTarget::Dnat(NatRange {
                min_addr: None,
                max_addr: None,
                ports: Some((8080, 8090)),
                random: false,
                random_fully: false,
                persistent: false,
            })
        );
        assert_eq!(saved(&port_only), " -j DNAT --to-destination :8080-8090");
    }

    #[test]
    fn v6_forms_and_bracketed_saves() {
        let one = NatTarget::Dnat(range("2001:db8::1", "2001:db8::1", Some((80, 80))));
        assert_eq!(dnat("[2001:db8::1]:80", Family::V6).unwrap(), one);
        assert_eq!(saved(&one), " -j DNAT --to-destination [2001:db8::1]:80");
        let span = NatTarget::Dnat(range("2001:db8::1", "2001:db8::9", Some((80, 88))));
        assert_eq!(
            dnat("[2001:db8::1-2001:db8::9]:80-88", Family::V6).unwrap(),
            span
        );
        assert_eq!(
            dnat("[2001:db8::1]-[2001:db8::9]:80-88", Family::V6).unwrap(),
            span
        );
        assert_eq!(
            saved(&span),
            " -j DNAT --to-destination [2001:db8::1-2001:db8::9]:80-88"
        );
        let bare = NatTarget::Dnat(range("2001:db8::1", "2001:db8::9", None));
        assert_eq!(dnat("2001:db8::1-2001:db8::9", Family::V6).unwrap(), bare);
        assert_eq!(dnat("[2001:db8::1-2001:db8::9]", Family::V6).unwrap(), bare);
        assert_eq!(
            saved(&bare),
            " -j DNAT --to-destination 2001:db8::1-2001:db8::9"
        );
        // `::1` is an address, `:80` a port.
        assert_eq!(
            dnat("::1", Family::V6).unwrap(),
            NatTarget::Dnat(range("::1", "::1", None))
        );
        assert!(matches!(
            dnat(":80", Family::V6).unwrap(),
            NatTarget::Dnat(NatRange {
                min_addr: None,
                ports: Some((80, 80)),
                ..
            })
        ));
    }

    #[test]
    fn malformed_ranges() {
        for (text, family, msg) in [
            ("", Family::V4, "empty range"),
            ("192.0.2.1:", Family::V4, "bad port range"),
            ("192.0.2.1:80-", Family::V4, "bad port range"),
            ("192.0.2.1:+80", Family::V4, "bad port range"),
            ("192.0.2.1:65536", Family::V4, "bad port range"),
            ("192.0.2.1:1000-2000/1000", Family::V4, "port shift"),
            ("192.0.2.300", Family::V4, "bad address"),
            ("192.0.2.1-", Family::V4, "bad address"),
            (
                "[2001:db8::1]:80",
                Family::V4,
                "not of this ruleset's family",
            ),
            ("192.0.2.1", Family::V6, "not of this ruleset's family"),
            ("[2001:db8::1:80", Family::V6, "missing ]"),
            ("2001:db8::1]:80", Family::V6, "missing ["),
            ("[2001:db8::1]80", Family::V6, "unexpected"),
            (
                "[2001:db8::1-2001:db8::2]-[2001:db8::3]",
                Family::V6,
                "bad address range",
            ),
            ("[2001:db8::9-2001:db8::1]:80", Family::V6, "high to low"),
        ] {
            let (col, e) = dnat(text, family).unwrap_err();
            assert_eq!(col, 7, "{text}");
            assert!(e.contains(msg), "{text}: {e}");
        }
    }

    #[test]
    fn netmap_takes_a_prefix_or_a_host() {
        let nm = |t: &str| build("NETMAP", Some((t, 1)), Flags::default(), false, Family::V4);
        assert_eq!(
            nm("192.0.2.77/24").unwrap(),
            NatTarget::Netmap {
                prefix: "192.0.2.0/24".parse().unwrap()
            }
        );
        assert_eq!(
            saved(&nm("192.0.2.7").unwrap()),
            " -j NETMAP --to 192.0.2.7/32"
        );
        assert!(nm("192.0.2.0/33").is_err());
        assert!(nm("2001:db8::/64").unwrap_err().1.contains("family"));
    }

    #[test]
    fn hooks_and_options() {
        assert_eq!(valid_hooks("MASQUERADE"), &[Hook::Postrouting]);
        assert!(valid_hooks("SNAT").contains(&Hook::Input));
        assert!(!valid_hooks("DNAT").contains(&Hook::Postrouting));
        assert!(takes_option("SNAT", "--random-fully"));
        assert!(!takes_option("DNAT", "--random-fully"));
        assert!(!takes_option("REDIRECT", "--random-fully"));
        assert!(takes_option("DNAT", "--to"));
        assert!(!takes_option("MASQUERADE", "--to-source"));
        assert!(given_twice("SNAT").contains("2.6.11"));
    }
}
