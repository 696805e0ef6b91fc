//! `-m conntrack`: the connection's state and, beyond it, its tuples, status
//! bits, remaining lifetime and the packet's direction (after xt_conntrack).
//!
//! Every option may be negated with `!` except `--ctdir`. Options other than
//! `--ctstate` need a connection ([`crate::ConnView`]): on an untracked or invalid packet
//! they do not match, negated or not, as in the kernel.

use std::fmt::Write as _;

use conntrack::conn::Status;

use super::state::{parse_states, write_states, StateSpec};
use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::{parse_net, parse_proto, Net, PortRange};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--ctstate"], true),
    Opt::value(&["--ctproto"], true),
    Opt::value(&["--ctorigsrc"], true),
    Opt::value(&["--ctorigdst"], true),
    Opt::value(&["--ctreplsrc"], true),
    Opt::value(&["--ctrepldst"], true),
    Opt::value(&["--ctorigsrcport"], true),
    Opt::value(&["--ctorigdstport"], true),
    Opt::value(&["--ctreplsrcport"], true),
    Opt::value(&["--ctrepldstport"], true),
    Opt::value(&["--ctstatus"], true),
    Opt::value(&["--ctexpire"], true),
    Opt::value(&["--ctdir"], false),
];

/// The other `--ct…` options of xt_conntrack are refused by name.
pub(crate) fn refuses(opt: &str) -> bool {
    opt.starts_with("--ct")
}

/// `--ctstatus` names in the order iptables-save prints them.
const STATUS_NAMES: &[(&str, u32)] = &[
    ("EXPECTED", Status::EXPECTED),
    ("SEEN_REPLY", Status::SEEN_REPLY),
    ("ASSURED", Status::ASSURED),
    ("CONFIRMED", Status::CONFIRMED),
];

/// The options of one `-m conntrack`; each with its `!`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CtMatch {
    pub(crate) state: Option<StateSpec>,
    pub(crate) proto: Option<(u8, bool)>,
    /// `--ctorigsrc`, `--ctorigdst`, `--ctreplsrc`, `--ctrepldst`.
    pub(crate) addrs: [Option<(Net, bool)>; 4],
    /// `--ctorigsrcport`, `--ctorigdstport`, `--ctreplsrcport`, `--ctrepldstport`.
    pub(crate) ports: [Option<(PortRange, bool)>; 4],
    /// `--ctstatus`: a mask of status bits; 0 is `NONE`.
    pub(crate) status: Option<(u32, bool)>,
    pub(crate) expire: Option<(u32, u32, bool)>,
    /// `--ctdir`: true for REPLY.
    pub(crate) dir_reply: Option<bool>,
}

const ADDR_OPTS: [&str; 4] = ["--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"];
const PORT_OPTS: [&str; 4] = [
    "--ctorigsrcport",
    "--ctorigdstport",
    "--ctreplsrcport",
    "--ctrepldstport",
];

/// `--ctstatus` list; errors carry the offset of the bad name.
fn parse_status(s: &str) -> Result<u32, (usize, String)> {
    let mut mask = 0;
    let mut offset = 0;
    for part in s.split(',') {
        if part.eq_ignore_ascii_case("NONE") {
            // NONE alone: no status bit set.
        } else {
            match STATUS_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(part)) {
                Some((_, b)) => mask |= b,
                None => {
                    return Err((
                        offset,
                        format!(
                            "unknown status {part} (expected NONE, EXPECTED, SEEN_REPLY, ASSURED or CONFIRMED)"
                        ),
                    ))
                }
            }
        }
        offset += part.chars().count() + 1;
    }
    Ok(mask)
}

/// `--ctexpire lo[:hi]` in seconds.
fn parse_expire(s: &str) -> Result<(u32, u32), String> {
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("bad --ctexpire value {s} (seconds, or lo:hi)"))
    };
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        return Err(format!("--ctexpire range {s} is reversed"));
    }
    Ok((lo, hi))
}

impl MatchExt for CtMatch {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let (v, inv) = (arg.text(), arg.invert);
        if let Some(i) = ADDR_OPTS.iter().position(|o| *o == arg.name) {
            self.addrs[i] = Some((parse_net(v, arg.family()).map_err(|e| arg.err(e))?, inv));
            return Ok(());
        }
        if let Some(i) = PORT_OPTS.iter().position(|o| *o == arg.name) {
            self.ports[i] = Some((PortRange::parse(v).map_err(|e| arg.err(e))?, inv));
            return Ok(());
        }
        match arg.name {
            "--ctstate" => {
                let mask = parse_states(v, true).map_err(|e| arg.err_at(e))?;
                self.state = Some(StateSpec { mask, invert: inv });
            }
            "--ctproto" => self.proto = Some((parse_proto(v).map_err(|e| arg.err(e))?, inv)),
            "--ctstatus" => self.status = Some((parse_status(v).map_err(|e| arg.err_at(e))?, inv)),
            "--ctexpire" => {
                let (lo, hi) = parse_expire(v).map_err(|e| arg.err(e))?;
                self.expire = Some((lo, hi, inv));
            }
            _ => {
                self.dir_reply = Some(match v.to_ascii_uppercase().as_str() {
                    "ORIGINAL" => false,
                    "REPLY" => true,
                    _ => {
                        return Err(arg.err(format!("bad --ctdir {v} (expected ORIGINAL or REPLY)")))
                    }
                });
            }
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m conntrack needs --ctstate or another --ct option")
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        if let Some(st) = &self.state {
            if ctx.ctstate.intersects(st.mask) == st.invert {
                return false;
            }
        }
        let others = self.proto.is_some()
            || self.addrs.iter().any(Option::is_some)
            || self.ports.iter().any(Option::is_some)
            || self.status.is_some()
            || self.expire.is_some()
            || self.dir_reply.is_some();
        if !others {
            return true;
        }
        let Some(c) = &ctx.conn else {
            return false;
        };
        let [orig, repl] = c.tuples;
        if let Some((p, inv)) = self.proto {
            if (orig.proto == p) == inv {
                return false;
            }
        }
        let addr_of = [orig.src, orig.dst, repl.src, repl.dst];
        for (spec, a) in self.addrs.iter().zip(addr_of) {
            if let Some((net, inv)) = spec {
                if net.contains(a) == *inv {
                    return false;
                }
            }
        }
        let port_of = [orig.src_id, orig.dst_id, repl.src_id, repl.dst_id];
        for (spec, p) in self.ports.iter().zip(port_of) {
            if let Some((r, inv)) = spec {
                if r.contains(p) == *inv {
                    return false;
                }
            }
        }
        if let Some((mask, inv)) = self.status {
            let known = STATUS_NAMES.iter().fold(0, |m, (_, b)| m | b);
            let hit = if mask == 0 {
                c.status & known == 0
            } else {
                c.status & mask != 0
            };
            if hit == inv {
                return false;
            }
        }
        if let Some((lo, hi, inv)) = self.expire {
            let left = c.expires_in;
            if (u64::from(lo) <= left && left <= u64::from(hi)) == inv {
                return false;
            }
        }
        if let Some(reply) = self.dir_reply {
            if c.reply != reply {
                return false;
            }
        }
        true
    }

    /// The iptables-save form, in libxt_conntrack's order.
    fn save(&self, out: &mut String) {
        let not = |inv: bool| if inv { " !" } else { "" };
        out.push_str(" -m conntrack");
        if let Some(st) = &self.state {
            let _ = write!(out, "{} --ctstate ", not(st.invert));
            write_states(st.mask, out);
        }
        if let Some((p, inv)) = self.proto {
            let _ = write!(out, "{} --ctproto {p}", not(inv));
        }
        for (spec, name) in self.addrs.iter().zip(ADDR_OPTS) {
            if let Some((net, inv)) = spec {
                let _ = write!(out, "{} {name} ", not(*inv));
                net.write(out);
            }
        }
        for (spec, name) in self.ports.iter().zip(PORT_OPTS) {
            if let Some((r, inv)) = spec {
                let _ = write!(out, "{} {name} ", not(*inv));
                r.write(out);
            }
        }
        if let Some((mask, inv)) = self.status {
            let _ = write!(out, "{} --ctstatus ", not(inv));
            let names: Vec<&str> = STATUS_NAMES
                .iter()
                .filter(|(_, b)| mask & b != 0)
                .map(|(n, _)| *n)
                .collect();
            if names.is_empty() {
                out.push_str("NONE");
            } else {
                out.push_str(&names.join(","));
            }
        }
        if let Some((lo, hi, inv)) = self.expire {
            let _ = write!(out, "{} --ctexpire {lo}", not(inv));
            if hi != lo {
                let _ = write!(out, ":{hi}");
            }
        }
        if let Some(reply) = self.dir_reply {
            out.push_str(if reply {
                " --ctdir REPLY"
            } else {
                " --ctdir ORIGINAL"
            });
        }
    }
}
