//! The linear evaluator: netfilter's traversal of one table for one hook.
//!
//! First matching terminal target wins; `-j` pushes a return frame, `-g` does not; RETURN or
//! the end of a user chain pops a frame, and with no frame left the built-in chain's policy
//! applies (as it does at the end of the built-in chain itself). Load-time loop detection makes
//! every traversal finite.
//!
//! [`run`] asks the chain's compiled index (see `classify`) for the next candidate rule instead of
//! stepping one rule at a time; [`run_linear`] is the plain scan, kept as the reference the
//! differential test compares against. Both share this one traversal so they cannot drift.

use super::classify::next_at_least;
use super::targets::Target;
use super::{Chain, EvalOutput, Policy, RuleRef, TableRules, TraceKind, TraceStep, Verdict};
use super::{Hook, PacketCtx};

pub(crate) fn run(t: &TableRules, hook: Hook, ctx: &PacketCtx, out: &mut EvalOutput) -> Verdict {
    traverse(t, hook, ctx, out, true)
}

/// The reference evaluator: every rule of every visited chain is checked in order.
pub(crate) fn run_linear(
    t: &TableRules,
    hook: Hook,
    ctx: &PacketCtx,
    out: &mut EvalOutput,
) -> Verdict {
    traverse(t, hook, ctx, out, false)
}

fn traverse(
    t: &TableRules,
    hook: Hook,
    ctx: &PacketCtx,
    out: &mut EvalOutput,
    compiled: bool,
) -> Verdict {
    let Some(start) = t.builtin[hook.index()] else {
        return Verdict::Accept;
    };
    // Return frames: (chain, index of the rule after the jump). Empty until the first `-j`, so
    // plain rulesets never allocate.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut notrack = false;
    let (mut chain, mut pos) = (start, 0usize);
    // Candidate lists of the chain being walked; rebuilt whenever the walk enters another chain
    // or moves backwards (candidates depend only on header fields, so rebuilding is exact).
    let mut lists: Vec<&[u32]> = Vec::new();
    let (mut lists_chain, mut lists_pos) = (usize::MAX, 0usize);
    out.trace |= ctx.trace;

    let verdict = loop {
        let Some(c) = t.chains.get(chain) else {
            // Unreachable: chain indices are resolved at load. Fail closed rather than panic.
            break Verdict::Drop;
        };
        if compiled {
            if let Some(Some(ix)) = t.index.chains.get(chain) {
                if lists_chain != chain || pos < lists_pos {
                    ix.lists(ctx, &mut lists);
                    lists_chain = chain;
                }
                lists_pos = pos;
                pos = next_at_least(&mut lists, pos).unwrap_or(c.rules.len());
            }
        }
        let Some(rule) = c.rules.get(pos) else {
            // End of chain: a built-in chain's policy, or an implicit RETURN.
            if c.policy.is_none() {
                if out.trace {
                    trace_return(t, c, out);
                }
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
        // As in the kernel, a rule is traced when it matched, before its target runs: the
        // TRACE rule itself is not reported, the rules after it are.
        if out.trace {
            trace_rule(t, &rule.target, rule_ref(), out);
        }
        match &rule.target {
            Target::Continue => {}
            Target::Log(log) => out.logs.push(log.record(rule_ref())),
            Target::Ct(ct) => ct.apply(&mut notrack, &mut out.ct_zone, &mut out.ct_helper),
            Target::Mark(m) => m.apply(&mut out.marks),
            Target::Connmark(op) => op.apply(&mut out.marks),
            Target::Trace => out.trace = true,
            Target::TcpMss(m) => out.tcpmss.push(*m),
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
    if out.trace {
        trace_policy(t, c, out);
    }
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

// Tracing is rare: its bookkeeping stays out of the hot loop's code.

#[cold]
#[inline(never)]
fn trace_rule(t: &TableRules, target: &Target, rule: RuleRef, out: &mut EvalOutput) {
    let chain_name = |i: usize| {
        t.chains
            .get(i)
            .map_or_else(|| "?".to_string(), |c| c.name.to_string())
    };
    out.trace_steps.push(TraceStep {
        rule,
        kind: TraceKind::Rule,
        verdict: target.trace_verdict(&chain_name),
    });
}

#[cold]
#[inline(never)]
fn trace_return(t: &TableRules, c: &Chain, out: &mut EvalOutput) {
    out.trace_steps.push(TraceStep {
        rule: RuleRef {
            table: t.table,
            chain: c.name.clone(),
            rule_num: c.rules.len() + 1,
        },
        kind: TraceKind::Return,
        verdict: "RETURN".into(),
    });
}

#[cold]
#[inline(never)]
fn trace_policy(t: &TableRules, c: &Chain, out: &mut EvalOutput) {
    out.trace_steps.push(TraceStep {
        rule: RuleRef {
            table: t.table,
            chain: c.name.clone(),
            rule_num: 0,
        },
        kind: TraceKind::Policy,
        verdict: match c.policy {
            Some(Policy::Drop) => "DROP",
            _ => "ACCEPT",
        }
        .into(),
    });
}
