//! The walk over a hook's stage table (see `crate::hooks`) and what each stage does.

use super::*;

impl Engine {
    // ---------------------------------------------------------------- hooks

    /// The stage table of a packet's family (`hooks`; pruned to the tables its ruleset has).
    #[inline(always)]
    pub(super) fn hook_table(&self, family: Family) -> &HookTable {
        match family {
            Family::V4 => &self.hooks4,
            Family::V6 => &self.hooks6,
        }
    }

    /// Walks the stages of `hook` for a packet, in their order. False when a stage took the
    /// packet (dropped, counted, or answered).
    #[inline(always)]
    pub(super) fn run_hook(&mut self, hook: Hook, f: &mut InFlight) -> bool {
        // A copy of the hook's few stages, so the walk holds no borrow of the table.
        let stages = self.hook_table(f.meta.family).hook(hook);
        for &stage in stages.as_slice() {
            if !self.run_stage(stage, hook, f) {
                return false;
            }
        }
        true
    }

    /// One stage of a hook (see [`crate::hooks`] for the table and their order).
    #[inline(always)]
    pub(super) fn run_stage(&mut self, stage: Stage, hook: Hook, f: &mut InFlight) -> bool {
        match stage {
            Stage::Raw => match self.run_table(Table::Raw, hook, f) {
                Verdict::Accept => true,
                Verdict::NoTrack => {
                    f.notrack = true;
                    true
                }
                v => self.stage_drop(v, hook, f),
            },
            Stage::ConntrackIn => {
                if !f.notrack {
                    // A partial checksum is the sender's to complete: trusted, as Linux does;
                    // locally generated packets are not verified (netfilter neither).
                    let verify = hook != Hook::Output && self.verify_checksum && !f.partial_csum();
                    f.ct = self.conntrack_in(&f.meta, f.pkt.as_slice(), verify, f.skb.zone);
                    if let Ct::Invalid(why) = f.ct {
                        self.invalid.add(why);
                    }
                    if let (Ct::New { .. }, true) = (&f.ct, self.helpers_on) {
                        self.attach_helper(f);
                    }
                    if let (Hook::Prerouting, Ct::New { .. }, Some(left)) =
                        (hook, &f.ct, &mut self.new_flow_budget)
                    {
                        if *left == 0 {
                            let (hook, meta) = (Some(Hook::Prerouting), &f.meta);
                            self.drop_packet(NEW_FLOW_BUDGET_DROP, hook, None, f.ingress, || {
                                meta.describe()
                            });
                            return false;
                        }
                        *left -= 1;
                    }
                }
                true
            }
            Stage::Mangle | Stage::Filter => {
                let table = if stage == Stage::Mangle {
                    Table::Mangle
                } else {
                    Table::Filter
                };
                match self.run_table(table, hook, f) {
                    Verdict::Accept => true,
                    v => self.stage_drop(v, hook, f),
                }
            }
            Stage::NatDst | Stage::NatSrc => {
                let manip = if stage == Stage::NatDst {
                    Manip::Dst
                } else {
                    Manip::Src
                };
                // The nat table sees only the first packet of a connection.
                if f.ct.nat_due(manip) && self.has_rules(f.meta.family, Table::Nat) {
                    let v = self.run_table(Table::Nat, hook, f);
                    if v != Verdict::Accept {
                        return self.stage_drop(v, hook, f);
                    }
                }
                // A masquerade binds to the address of the interface the packet leaves by;
                // the others to the one it arrived on.
                let iface = match hook {
                    Hook::Postrouting => f.egress,
                    Hook::Output => None,
                    _ => f.ingress,
                };
                let before = f.meta.dst;
                if !self.nat_step(f, manip, iface, hook) {
                    return false;
                }
                // A DNAT in OUTPUT re-routes the packet before the filter table, as
                // ip_route_me_harder does.
                if hook == Hook::Output && f.meta.dst != before {
                    let Some(route) = self.routes.lookup(f.meta.dst).copied() else {
                        self.count_drop_hook(DropReason::NoRoute, hook, &f.meta, None);
                        return false;
                    };
                    f.egress = Some(route.iface);
                    f.via = route.via;
                }
                true
            }
            Stage::Tcpmss => {
                // After every table had its say (the rules only choose the value). A
                // reassembled SYN keeps its options: its fragments, not the clone, are sent.
                if let (Some(mss), None) = (f.skb.mss, &f.frag) {
                    let (v6, partial) = (f.meta.family == Family::V6, f.partial_csum());
                    match tcpmss::apply_with(&mut f.pkt, v6, f.meta.l4_offset, mss, partial) {
                        Ok(()) => f.meta.len = f.pkt.len(),
                        Err(why) => {
                            self.count_drop_hook(why.into(), hook, &f.meta, f.ingress);
                            return false;
                        }
                    }
                }
                true
            }
            Stage::Helper => self.helper_stage(hook, f),
            Stage::Confirm => {
                // Only a new connection has anything to insert (and to drop): the others
                // leave `f.ct` as it is, which spares a drop call per packet.
                if !matches!(f.ct, Ct::New { .. }) {
                    return true;
                }
                let ct = std::mem::replace(&mut f.ct, Ct::Untracked);
                self.confirm(ct, &f.meta, f.ingress, hook)
            }
        }
    }

    /// A table's verdict other than ACCEPT ends the packet: REJECT answers a packet that
    /// arrived (the router's own are just dropped), and either is counted.
    #[cold]
    pub(super) fn stage_drop(&mut self, v: Verdict, hook: Hook, f: &InFlight) -> bool {
        self.verdict_drop(v, hook, &f.meta, &f.pkt, f.ingress);
        false
    }
}
