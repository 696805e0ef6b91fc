//! The linear evaluator: netfilter's traversal of one table for one hook.
//!
//! First matching terminal target wins; `-j` pushes a return frame, `-g` does not; RETURN or
//! the end of a user chain pops a frame, and with no frame left the built-in chain's policy
//! applies (as it does at the end of the built-in chain itself). Load-time loop detection makes
//! every traversal finite.

use super::target::Target;
use super::{EvalOutput, LogRecord, Policy, RuleRef, TableRules, Verdict};
use super::{Hook, PacketCtx};

pub(crate) fn run(t: &TableRules, hook: Hook, ctx: &PacketCtx, out: &mut EvalOutput) -> Verdict {
    let Some(start) = t.builtin[hook.index()] else {
        return Verdict::Accept;
    };
    // Return frames: (chain, index of the rule after the jump). Empty until the first `-j`, so
    // plain rulesets never allocate.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut notrack = false;
    let (mut chain, mut pos) = (start, 0usize);

    let verdict = loop {
        let Some(c) = t.chains.get(chain) else {
            // Unreachable: chain indices are resolved at load. Fail closed rather than panic.
            break Verdict::Drop;
        };
        let Some(rule) = c.rules.get(pos) else {
            // End of chain: a built-in chain's policy, or an implicit RETURN.
            if c.policy.is_none() {
                if let Some((ch, next)) = stack.pop() {
                    (chain, pos) = (ch, next);
                    continue;
                }
            }
            break policy(t, start, ctx, out);
        };
        let here = pos;
        pos += 1;
        if !rule.matches.iter().all(|m| m.matches(ctx, &out.marks)) {
            continue;
        }
        rule.counters.add(ctx.len);
        let rule_ref = || RuleRef {
            table: t.table,
            chain: c.name.clone(),
            rule_num: here + 1,
        };
        match &rule.target {
            Target::Continue => {}
            Target::Log(log) => out.logs.push(LogRecord {
                rule: rule_ref(),
                prefix: log.prefix.clone(),
                level: log.level,
            }),
            Target::NoTrack { .. } => notrack = true,
            Target::Mark { value, mask } => out.marks.mark = (out.marks.mark & !mask) ^ value,
            Target::Connmark(op) => op.apply(&mut out.marks),
            Target::Accept => {
                if !out.skip_accept_rule {
                    out.rule = Some(rule_ref());
                }
                break Verdict::Accept;
            }
            Target::Nat(nat) => {
                out.rule = Some(rule_ref());
                out.nat = Some((**nat).clone());
                break Verdict::Accept;
            }
            Target::Drop => {
                out.rule = Some(rule_ref());
                break Verdict::Drop;
            }
            Target::Reject(with) => {
                out.rule = Some(rule_ref());
                break Verdict::Reject(*with);
            }
            Target::Return => match stack.pop() {
                Some((ch, next)) => (chain, pos) = (ch, next),
                None => break policy(t, start, ctx, out),
            },
            Target::Jump(to) => {
                stack.push((chain, pos));
                (chain, pos) = (*to, 0);
            }
            Target::Goto(to) => (chain, pos) = (*to, 0),
        }
    };
    match verdict {
        Verdict::Accept if notrack => Verdict::NoTrack,
        v => v,
    }
}

fn policy(t: &TableRules, start: usize, ctx: &PacketCtx, out: &mut EvalOutput) -> Verdict {
    let Some(c) = t.chains.get(start) else {
        return Verdict::Drop;
    };
    c.policy_counters.add(ctx.len);
    if !(out.skip_accept_rule && c.policy != Some(Policy::Drop)) {
        out.rule = Some(RuleRef {
            table: t.table,
            chain: c.name.clone(),
            rule_num: 0,
        });
    }
    match c.policy {
        Some(Policy::Drop) => Verdict::Drop,
        Some(Policy::Accept) | None => Verdict::Accept,
    }
}
