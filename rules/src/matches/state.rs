//! `-m state --state LIST`: the packet's conntrack state among INVALID, NEW, RELATED,
//! ESTABLISHED and UNTRACKED (not the virtual SNAT / DNAT states, which only `--ctstate`
//! sees). The state lists of `--state` and `--ctstate` are parsed and printed here.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{CtState, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--state"], true)];

/// A state list (`--state`, `--ctstate`) with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateSpec {
    pub(crate) mask: CtState,
    pub(crate) invert: bool,
}

/// `-m state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) state: StateSpec,
}

impl Default for State {
    fn default() -> State {
        State {
            state: StateSpec {
                mask: CtState::default(),
                invert: false,
            },
        }
    }
}

impl MatchExt for State {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let mask = parse_states(arg.text(), false).map_err(|e| arg.err_at(e))?;
        self.state = StateSpec {
            mask,
            invert: arg.invert,
        };
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m state needs --state")
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let base = CtState(ctx.ctstate.0 & CtState::BASE.0);
        base.intersects(self.state.mask) != self.state.invert
    }

    fn save(&self, out: &mut String) {
        let _ = write!(
            out,
            " -m state{} --state ",
            if self.state.invert { " !" } else { "" }
        );
        write_states(self.state.mask, out);
    }
}

/// State names in the order iptables-save prints them.
const STATE_NAMES: &[(&str, CtState)] = &[
    ("INVALID", CtState::INVALID),
    ("NEW", CtState::NEW),
    ("RELATED", CtState::RELATED),
    ("ESTABLISHED", CtState::ESTABLISHED),
    ("UNTRACKED", CtState::UNTRACKED),
    ("SNAT", CtState::SNAT),
    ("DNAT", CtState::DNAT),
];

/// Parses a comma list of states; `allow_nat` admits SNAT/DNAT (`--ctstate` only). On error
/// returns the character offset of the bad element inside `s`.
pub(crate) fn parse_states(s: &str, allow_nat: bool) -> Result<CtState, (usize, String)> {
    let mut mask = CtState::default();
    let mut offset = 0;
    for part in s.split(',') {
        let found = STATE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(part))
            .map(|&(_, st)| st)
            .filter(|st| allow_nat || CtState::BASE.contains(*st));
        match found {
            Some(st) => mask |= st,
            None if part.is_empty() => return Err((offset, "empty state in the list".into())),
            None => return Err((offset, format!("unknown state {part}"))),
        }
        offset += part.chars().count() + 1;
    }
    Ok(mask)
}

/// Appends a state list as iptables-save prints it (`RELATED,ESTABLISHED`).
pub(crate) fn write_states(mask: CtState, out: &mut String) {
    let mut first = true;
    for (name, st) in STATE_NAMES {
        if mask.contains(*st) {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(
            parse_states("RELATED,established", false).unwrap(),
            CtState::RELATED | CtState::ESTABLISHED
        );
        assert_eq!(parse_states("NEW,FOO", false).unwrap_err().0, 4);
        assert_eq!(parse_states("SNAT", false).unwrap_err().0, 0);
        assert_eq!(parse_states("SNAT", true).unwrap(), CtState::SNAT);
    }
}
